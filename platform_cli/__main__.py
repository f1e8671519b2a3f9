from platform_cli.main import main

main()
