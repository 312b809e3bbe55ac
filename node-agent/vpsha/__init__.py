# vps-ha's node agent: the programs vps-ha's nodes run, one module per tool, and what they share.
# Nodes get the modules under /usr/local/lib/vps-ha/python/vpsha/ (components/render/python-lib.ts);
# each command is a small launcher calling its module's main. Nothing is imported here, so a tool
# loads only the modules it uses.
