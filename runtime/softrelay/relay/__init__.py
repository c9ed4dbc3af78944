"""The relay: everything ``softrelay run`` starts, the scan's stages, commands and settings in
service.
"""
