def main() -> None:
    print("klamm")
