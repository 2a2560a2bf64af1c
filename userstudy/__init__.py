"""User studies of generated videos: a ranking web page, its answers, and their statistics. Standalone.

Commands: ``python -m userstudy simulate | analyze | make-study | serve`` (``--help`` on each), each
a thin layer over the function of the same name in its module; see userstudy/README.md. Modules:

- ``schema``: the columns of ``rankings.csv`` and the paper's four criteria;
- ``rankings``: reading and checking ranking data, points (rank 1 of k = k points);
- ``nonparametric``: Kruskal-Wallis + Dunn (the paper), Friedman + Kendall's W + Nemenyi / Conover;
- ``analysis`` / ``figures`` / ``report``: the result of an analysis, its heatmaps and its report;
- ``analyze``: the ``analyze`` command (``analyze``, ``analyze_rankings``, ``write_analysis``);
- ``simulate``: the ``simulate`` command, synthetic studies and power;
- ``study`` / ``make_study``: the study folder and the ``make-study`` command;
- ``store`` / ``serve``: the answers (SQLite, with rankings.csv as export) and the ``serve`` command
  (standard library only);
- ``cli`` / ``__main__``: what the commands share, and ``python -m userstudy``.

Nothing here imports the rest of the project (``imac``, ``bench``, ``metrics``).
"""
