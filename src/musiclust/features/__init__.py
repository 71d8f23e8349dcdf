"""musiclust.features"""
