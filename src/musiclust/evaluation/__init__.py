"""musiclust.evaluation"""
