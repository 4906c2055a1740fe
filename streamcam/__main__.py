from streamcam.cli import main

main()
