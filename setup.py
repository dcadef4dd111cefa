"""The C extension (the only C in clonekit); everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "clonekit._native",
            sources=[f"src/clonekit/_native/{name}.c" for name in ("native", "verdict", "probe", "sys", "security", "bpf", "filter")],
            depends=[f"src/clonekit/_native/{name}.h" for name in ("clonekit", "raw")],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
        )
    ]
)
