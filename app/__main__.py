"""`python -m app` is the `mupredict` command (useful where the console script is not on PATH)."""

from app.cli import main

main()
