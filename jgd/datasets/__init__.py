"""Bundled datasets (no network needed)."""

from __future__ import annotations

from importlib import resources

import jax.numpy as jnp

from jgd.data import Dataset, load_csv

__all__ = ["SEATTLE_FEATURES", "seattle_weather", "seattle_weather_path"]

#: Today's measurements used to predict tomorrow's maximum temperature (°C, mm).
SEATTLE_FEATURES = ("temp_max", "temp_min", "precipitation")


def seattle_weather_path() -> str:
    """Path of the bundled ``seattle-weather.csv`` (see ``SOURCE.md`` beside it)."""
    return str(resources.files(__package__).joinpath("seattle-weather.csv"))


def seattle_weather() -> Dataset:
    """Seattle daily weather 2012–2015: predict tomorrow's ``temp_max`` (°C).

    ``X`` holds day t's ``temp_max``, ``temp_min`` (°C) and ``precipitation``
    (mm); ``y`` is day t+1's ``temp_max``. 1,461 days give 1,460 rows, in date
    order (split without a key to keep it a time series).

    Example:
        >>> import jgd
        >>> data = jgd.datasets.seattle_weather()
        >>> data.X.shape, data.y.shape
        ((1460, 3), (1460,))
    """
    days = load_csv(seattle_weather_path(), target="temp_max", features=list(SEATTLE_FEATURES[1:]))
    today = jnp.column_stack([days.y, days.X])
    return Dataset(X=today[:-1], y=days.y[1:])
