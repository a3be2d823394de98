"""mupredict service shell: settings, database, job queue, worker, HTTP API, dashboard, client, CLI."""
