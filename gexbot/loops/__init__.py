"""The long-running parts of the bot: the service that runs every loop under one TaskGroup,
the poll cycle, delivery, rules reload, leadership and health. Thin I/O around calls into
`gexbot.core`; a failure in one pass is logged and the loop goes on."""
