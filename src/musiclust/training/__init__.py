"""musiclust.training"""
