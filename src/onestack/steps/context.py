"""What actions use while they run on a host."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from onestack.core.host import HostConnection
from onestack.core.progress import Progress
from onestack.drivers.supervisor import SiteSupervisor
from onestack.model.paths import SitePaths


@dataclass
class HostContext:
    """A host, the site's paths, its supervisor and a progress reporter; ``hosts``:
    every host of the site by name, for what must run elsewhere (a probe of the
    controller's database by a compute's step)."""

    host: HostConnection
    paths: SitePaths
    supervisor: SiteSupervisor
    progress: Progress
    hosts: Mapping[str, HostConnection] = field(default_factory=dict)
