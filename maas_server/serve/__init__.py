"""The serve process: what `maas-server serve` does around the app (cli.py parses the command line).

Checks and preparation before gunicorn forks (options.py: the store migrated, the serving address
checked; multiproc.py: Prometheus's multiprocess folder), Ray started in a child process when a model
runs on it (ray_start.py), and the gunicorn worker with its socket deadlines (worker.py). The app
(app.py) and everything below it never import this package.
"""
