"""PNG plots (matplotlib, headless), below the stages that draw them: the model stage (training
curves, Kaplan–Meier by risk group, calibration) and the report and export (embedding maps,
neighbours' survival, attributions) import from here, not from each other.

* :mod:`graphonc.plots.base`      headless backend, ``save_figure``, Kaplan–Meier axes
* :mod:`graphonc.plots.training`  training and evaluation plots
* :mod:`graphonc.plots.search`    similar-patient search plots
"""
