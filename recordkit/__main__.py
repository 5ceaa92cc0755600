from recordkit.cli import main

main()
