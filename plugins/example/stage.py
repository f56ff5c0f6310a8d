"""The smallest eegkit plugin: a stateless kernel and no setup.

Copy this folder to start a plugin. ``process`` is compiled by numba when the plugin
loads; it gets each block ``x`` of shape ``(n_channels, n_samples)`` and may change it
in place (return None) or return a new array.
"""


def process(x):
    """Full-wave rectification: replace every sample by its absolute value, in place."""
    n_channels, n_samples = x.shape
    for c in range(n_channels):
        for t in range(n_samples):
            x[c, t] = abs(x[c, t])
