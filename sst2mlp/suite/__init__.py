"""The benchmark run: the pytest plugin (plugin: options, parametrization, hooks), the session's state (session:
`Suite`), one benchmark's subject and records (case), the run's models, variants, seeds and cold starts, its order
(schedule), journal and progress line, and the run-to-run agreement check (agreement), which runs the suite."""
