"""The ``turbonext`` command line: :mod:`turbonext.commands.main` dispatches to one module per subcommand."""
