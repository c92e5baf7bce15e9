# IPython kernel configuration for the code interpreter (start-up.sh puts it in the kernels'
# IPython profile).

c = get_config()  # noqa: F821

# Show whole sequences: an agent reading a list wants all of it, not "...".
c.PlainTextFormatter.max_seq_length = 0

