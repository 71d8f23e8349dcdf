"""musiclust.reporting"""
