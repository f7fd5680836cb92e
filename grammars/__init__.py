"""The lark grammar of the `.rks` language, installed as package data of rankitect_dsl."""
