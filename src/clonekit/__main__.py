from clonekit.cli import program

program()
