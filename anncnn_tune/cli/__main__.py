from anncnn_tune.cli.main import main

main()
