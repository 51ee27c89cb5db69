"""CodeCarbonTracker: the energy and emissions of training, measured offline into ``emissions.csv``.

Not a metrics tracker: it measures from ``train_begin`` to ``train_end`` (as transformers'
``CodeCarbonCallback``) and appends one row per training to ``<output_dir>/emissions.csv``. It uses
CodeCarbon's ``OfflineEmissionsTracker``, which never looks the machine's location up over the network:
the country is ``$CODECARBON_COUNTRY_ISO_CODE`` (or ``country_iso_code`` in a ``.codecarbon.config``),
else :data:`DEFAULT_COUNTRY`. Every other ``CODECARBON_*`` setting applies as CodeCarbon reads it.
One process per machine measures (local rank 0), since it measures the whole machine.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from lifecycle.integrations.base import GeneralTracker

__all__ = ["DEFAULT_COUNTRY", "CodeCarbonTracker"]

logger = logging.getLogger("lifecycle.integrations")

#: the country whose energy mix is assumed where none is set up (ISO 3166-1 alpha-3)
DEFAULT_COUNTRY = "USA"


def _configured_country() -> str | None:
    """The country CodeCarbon's own settings give (``CODECARBON_*`` variables, ``.codecarbon.config``)."""
    from codecarbon.core.config import get_hierarchical_config

    country = get_hierarchical_config().get("country_iso_code")
    return str(country) if country else None


class CodeCarbonTracker(GeneralTracker):
    """Measures the run's energy and emissions; metrics and configuration are not its business."""

    name = "codecarbon"
    requires_logging_directory = True
    main_process_only = False  # one per machine: see ``_measures``

    def __init__(
        self, run_name: str | None = None, logging_dir: str | os.PathLike[str] = ".", **tracker_kwargs: Any
    ):
        self.run_name = run_name
        self.output_dir = os.fspath(logging_dir)
        self.tracker_kwargs = tracker_kwargs
        self.emissions: Any = None

    @classmethod
    def from_args(cls, args: Any) -> CodeCarbonTracker:
        """``emissions.csv`` in ``output_dir``, as transformers' callback writes it."""
        return cls(args.run_name, args.output_dir)

    @property
    def tracker(self) -> Any:
        """The ``codecarbon.OfflineEmissionsTracker``; None before ``start``."""
        return self.emissions

    @staticmethod
    def _measures() -> bool:
        """Whether this process measures: local rank 0 (``$LOCAL_RANK``), one per machine."""
        return int(os.environ.get("LOCAL_RANK", "0")) == 0

    def start(self) -> None:
        if self.emissions is not None or not self._measures():
            return
        from codecarbon import OfflineEmissionsTracker

        settings: dict[str, Any] = {"output_dir": self.output_dir, "log_level": "error"}
        if self.run_name:
            settings["project_name"] = self.run_name
        if _configured_country() is None:
            settings["country_iso_code"] = DEFAULT_COUNTRY
            logger.warning(
                "codecarbon: assuming the energy mix of %s; set CODECARBON_COUNTRY_ISO_CODE to your country",
                DEFAULT_COUNTRY,
            )
        os.makedirs(self.output_dir, exist_ok=True)
        self.emissions = OfflineEmissionsTracker(**{**settings, **self.tracker_kwargs})
        self.emissions.start()

    def finish(self) -> None:
        """Stop measuring and append the row to ``emissions.csv``."""
        if self.emissions is not None:
            self.emissions.stop()
            self.emissions = None
