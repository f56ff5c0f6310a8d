"""Entry point of eegkit's benchmark suite: ``python -m benchmarks`` (see README.md here).

The implementation ships inside the package (``eegkit._bench``) so that ``eegkit bench``
works from an installed wheel too; this folder holds the documentation and the
published results.
"""
