"""TF Serving's wire facts that both programs of this project need: the controller's toolkit
(``tfs_fleet``) and the serving stand-in (``tfs_standin``). No imports, no dependencies: the
stand-in's image carries this package beside its own."""
