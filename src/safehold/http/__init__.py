"""What the API (``/v1``) and the console (``web``) share about HTTP: bounded path and query parameters, reading
uploads within the process's memory budget, and sending export packages. Both import it; it imports neither."""
