from onestack.cli.main import main

main()
