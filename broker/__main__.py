"""``python -m klamm.broker``: the same as ``klamm broker start`` (tests spawn brokers so)."""

from .cli.main import main

if __name__ == "__main__":
    main(["broker", "start", *__import__("sys").argv[1:]])
