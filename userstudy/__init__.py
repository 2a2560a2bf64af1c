"""User studies of generated videos: a ranking and pairwise web page, its answers, and their statistics.
Standalone.

Commands: ``python -m userstudy simulate | analyze | make-study | serve`` (``--help`` on each), each
a thin layer over the function of the same name in its module; see userstudy/README.md. Modules:

- ``schema``: the columns of ``rankings.csv`` and the paper's four criteria;
- ``rankings``: reading and checking ranking data, points (rank 1 of k = k points);
- ``nonparametric``: Kruskal-Wallis + Dunn (the paper), Friedman + Kendall's W + Nemenyi / Conover,
  computed by scipy, scikit-posthocs and statsmodels;
- ``attention``: scoring the attention checks and the exclusion rule;
- ``pairwise``: pairwise answers, Bradley-Terry (choix) with participant-bootstrap intervals, win rates,
  matched-speech shares;
- ``agreement``: Kendall's tau between the rankings and a run's metrics (``results.json``);
- ``analysis`` / ``figures`` / ``report``: the result of an analysis, its heatmaps and its report;
- ``analyze``: the ``analyze`` command (``analyze``, ``analyze_rankings``, ``write_analysis``);
- ``simulate``: the ``simulate`` command, synthetic studies and power;
- ``study`` / ``make_study``: the study folder and the ``make-study`` command; ``dubbing``: the
  mismatched-speech videos of match trials (PyAV stream copy);
- ``jsonfile`` / ``files``: bounded reading of others' JSON files, atomic writing of files and folders;
- ``progress``: the progress lines of long loops (the bootstraps, ``simulate --power``);
- ``store`` / ``serve``: the answers (SQLite, with rankings.csv and pairwise.csv as exports) and the
  ``serve`` command
  (standard library only);
- ``cli`` / ``__main__``: what the commands share, and ``python -m userstudy``.

Nothing here imports the rest of the project (``imac``, ``bench``, ``metrics``).
"""
