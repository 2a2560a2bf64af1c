"""User studies of generated videos: a ranking web page, its answers, and their statistics. Standalone.

Modules (each command is a thin layer over the functions of its module; see userstudy/README.md):

- ``schema``: the columns of ``rankings.csv`` and the paper's four criteria;
- ``rankings``: reading and checking ranking data, points (rank 1 of k = k points);
- ``nonparametric``: Kruskal-Wallis + Dunn (the paper), Friedman + Kendall's W + Nemenyi / Conover;
- ``analyze``: ``python -m userstudy.analyze``, the tables, figure and report;
- ``simulate``: ``python -m userstudy.simulate``, synthetic studies and power;
- ``study`` / ``make_study``: the study folder and ``python -m userstudy.make_study``;
- ``store`` / ``serve``: the answer file and ``python -m userstudy.serve`` (standard library only).

Nothing here imports the rest of the project (``imac``, ``bench``, ``metrics``).
"""
