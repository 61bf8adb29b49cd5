"""Build configuration beyond pyproject.toml: the optional C loop of record validation.

`protocol/_record_walk.c` is the hot loop of `protocol/record_validation.py`; without a
C compiler the build goes on without it and the same loop runs in Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "contextplane.protocol._record_walk",
            ["src/contextplane/protocol/_record_walk.c"],
            optional=True,
        )
    ]
)
