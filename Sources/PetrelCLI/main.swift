print("petrel: under construction")
