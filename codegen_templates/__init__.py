"""The jinja2 templates of the generated supernet and subnet modules, installed as package data of rankitect_dsl."""
