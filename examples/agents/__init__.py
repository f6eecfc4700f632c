"""Example agents you run from the shell (`orchestrator agents list`), installed as
`orchestrator.example_agents` and registered under the `orchestrator.agents` entry-point group."""
