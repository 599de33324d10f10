"""The SAEs that ship with workbench (package data ``workbench.saes``); see README.md here."""
