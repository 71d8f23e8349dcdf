"""musiclust.data"""
