"""Hydra search-path plugin: the user's config folders beside survlab's packaged configs.

SURVLAB_CONFIG_PATH folders are searched before the package configs (they may replace a shipped config of the same
name); `./conf` of the working directory after them (new names, and the optional `conf/local/default.yaml`).
See `survlab.config.search_path`.
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class SurvlabSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from survlab.config.search_path import user_conf_dirs_first, user_conf_dirs_last

        for d in reversed(user_conf_dirs_first()):
            search_path.prepend(provider="survlab-user", path=f"file://{d}")
        for d in user_conf_dirs_last():
            search_path.append(provider="survlab-cwd", path=f"file://{d}")
