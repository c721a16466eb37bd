"""How state is kept and served: Faust tables, the Redis mirror."""
