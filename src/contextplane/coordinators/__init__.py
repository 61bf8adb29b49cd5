"""Coordinators: the classic consumer group coordinator (`group`) and its pure state
machine (`group_state`)."""
