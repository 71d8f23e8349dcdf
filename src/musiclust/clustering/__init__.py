"""musiclust.clustering"""
