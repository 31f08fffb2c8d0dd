"""Generates the gRPC stubs from ../../proto (build_stubs.sh) before setuptools runs.

Every setuptools step (metadata, build, sdist) needs the generated package
microgpt_client._stubs, so they are generated first, whatever the command; from an sdist,
which carries the stubs and not the proto, the existing ones are kept. Everything else is in
pyproject.toml.
"""
import os
import subprocess

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))

subprocess.run(["bash", os.path.join(HERE, "build_stubs.sh")], check=True)
setup()
