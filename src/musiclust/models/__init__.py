"""musiclust.models"""
