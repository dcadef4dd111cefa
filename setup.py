"""The C extensions (_native; _seccomp, linked with libseccomp); everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "clonekit._native",
            sources=[f"src/clonekit/_native/{name}.c" for name in ("native", "verdict", "probe", "sys", "security", "bpf", "filter", "sandbox")],
            depends=[f"src/clonekit/_native/{name}.h" for name in ("clonekit", "raw")],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
        ),
        # libseccomp in a module of its own: the CLI loads it only when a filter is configured
        Extension(
            "clonekit._seccomp",
            sources=["src/clonekit/_seccomp.c"],
            libraries=["seccomp"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
        ),
    ]
)
