"""One module per chapter: the tables and sentences it shows, tested on small inputs."""
