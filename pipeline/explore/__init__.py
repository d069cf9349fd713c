"""Reading a store back: search (hits and the moments they lie in) and
clustering with its page."""
