"""What actions use while they run on a host."""

from __future__ import annotations

from dataclasses import dataclass

from onestack.core.host import HostConnection
from onestack.core.progress import Progress
from onestack.drivers.supervisor import SiteSupervisor
from onestack.model.paths import SitePaths


@dataclass
class HostContext:
    """A host, the site's paths, its supervisor and a progress reporter."""

    host: HostConnection
    paths: SitePaths
    supervisor: SiteSupervisor
    progress: Progress
