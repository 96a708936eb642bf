"""twin_viewer"""
