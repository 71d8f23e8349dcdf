"""musiclust.text"""
