"""One module per `bench` subcommand: NAME, HELP, DESCRIPTION,
`add_arguments(parser)` and `main(args) -> exit status`."""
