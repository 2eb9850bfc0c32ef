from mailctl.cli import main

main()
