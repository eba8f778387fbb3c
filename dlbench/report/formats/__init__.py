"""One module per output format of a report. The data flows one way: the table model
(:mod:`dlbench.report.table`) and the runs split by machine (:mod:`.machines`) go in, text
(or a rich renderable) comes out; :mod:`dlbench.report.render` picks the format and adds the pictures."""
