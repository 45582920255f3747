"""fastgd's airspeed-velocity (asv) benchmark suite; see ``asv.conf.json`` and the README.

Every benchmark is parametrized over :data:`fastgd.OPTIMIZERS`, so a new rule
appears in every table without new benchmark code.
"""
