"""An example third-party plugin for orchestrator: a tool that calls a local issue tracker's HTTP
API (`tools.list_open_issues`) and an agent that triages the open issues (`agent.AGENT`), both
registered through entry points (`orchestrator.tools`, `orchestrator.agents`)."""
