from core_app.cli import main

main()
